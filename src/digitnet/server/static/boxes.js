// Boxes over the canvas: a solid box with its digit for each mark read, a dashed "not a digit" box for
// each mark rejected. A panel of the result view (see view.js); box coordinates are the canvas's pixels.

export class Boxes {
  constructor(layer, canvas) {
    this.layer = layer;
    this.canvas = canvas;
  }

  // reading: the API's result; boxes only make sense for what was drawn on this canvas.
  show(reading, state) {
    this.clear();
    if (state === "empty" || !reading.fromCanvas) return;
    for (const p of reading.predictions || []) this.add(p.box, String(p.digit), "digit");
    for (const r of reading.rejected || []) this.add(r.box, "not a digit", "rejected");
  }

  add([x, y, w, h], label, kind) {
    const k = this.layer.clientWidth / this.canvas.width;  // canvas pixels -> CSS pixels
    const box = document.createElement("div");
    box.className = `box ${kind}`;
    Object.assign(box.style, { left: `${x * k}px`, top: `${y * k}px`, width: `${w * k}px`, height: `${h * k}px` });
    const tag = document.createElement("span");
    tag.textContent = label;
    box.appendChild(tag);
    box.setAttribute("aria-label", kind === "digit" ? `read as ${label}` : "not a digit");
    this.layer.appendChild(box);
  }

  error() { this.clear(); }

  clear() { this.layer.replaceChildren(); }
}
