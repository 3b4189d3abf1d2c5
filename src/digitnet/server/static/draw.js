// The drawing pad: pointer strokes on a canvas, with undo and clear. Knows nothing of the API.

export class Pad {
  // onChange(delay) is called when the drawing changed: delay is how long to wait before reading it.
  constructor(canvas, onChange) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.strokes = [];  // each stroke: a list of [x, y] in canvas pixels
    this.current = null;
    this.onChange = onChange;
    canvas.addEventListener("pointerdown", (e) => {
      canvas.setPointerCapture(e.pointerId);
      this.current = [this.point(e)];
      this.redraw();
    });
    canvas.addEventListener("pointermove", (e) => {
      if (!this.current) return;
      this.current.push(this.point(e));
      this.redraw();
      this.onChange(250);  // debounced: read when the pen pauses
    });
    const finish = () => {
      if (!this.current) return;
      this.strokes.push(this.current);
      this.current = null;
      this.redraw();
      this.onChange(80);
    };
    canvas.addEventListener("pointerup", finish);
    canvas.addEventListener("pointercancel", finish);
    this.redraw();
  }

  get empty() { return this.strokes.length === 0; }

  // A pen-like width relative to the canvas: thick enough to read like MNIST after scaling.
  penWidth() { return Math.max(8, this.canvas.height / 14); }

  point(e) {
    const r = this.canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * this.canvas.width / r.width, (e.clientY - r.top) * this.canvas.height / r.height];
  }

  redraw() {
    const ctx = this.ctx;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.strokeStyle = "#111";
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.lineWidth = this.penWidth();
    for (const s of this.strokes.concat(this.current ? [this.current] : [])) {
      ctx.beginPath();
      ctx.moveTo(s[0][0], s[0][1]);
      for (const [x, y] of s.slice(1)) ctx.lineTo(x, y);
      if (s.length === 1) ctx.lineTo(s[0][0] + 0.1, s[0][1]);
      ctx.stroke();
    }
  }

  undo() { this.strokes.pop(); this.redraw(); }

  clear() { this.strokes.length = 0; this.redraw(); }

  dataURL() { return this.canvas.toDataURL("image/png"); }
}
