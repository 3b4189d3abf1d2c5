// "Inside the network": the 28x28 the model saw with the saliency of one class over it, a bar per class
// (hover or tap one to see its saliency) and the feature maps of each block. A panel of the result view
// (see view.js); it shows the explanation of the first digit read, which /api/explain adds.

const $ = (id) => document.getElementById(id);

export class Inside {
  // onOpen(): called when the panel opens, so that the page asks for an explanation of what is drawn.
  constructor(onOpen) {
    this.details = $("inside");
    this.canvas = $("saliency");
    this.caption = $("saliency-caption");
    this.bars = $("class-bars");
    this.maps = $("maps");
    this.note = $("inside-note");
    this.ctx = this.canvas.getContext("2d", { willReadFrequently: true });
    this.pred = null;  // the first prediction, with its explanation
    this.chosen = 0;  // the class tapped (default: the digit read); hovering shows another for a while
    this.pixels = null;  // the 28x28 input, grey 0-255
    for (let d = 0; d < 10; d++) {
      const li = document.createElement("li");
      li.innerHTML = `<button type="button" aria-label="show the saliency for ${d}"><span class="col"><span class="fill"></span></span><span>${d}</span></button>`;
      const button = li.querySelector("button");
      button.addEventListener("pointerenter", () => this.draw(d));
      button.addEventListener("pointerleave", () => this.draw(this.chosen));
      button.addEventListener("focus", () => this.draw(d));
      button.addEventListener("click", () => { this.chosen = d; this.draw(d); });
      this.bars.appendChild(li);
    }
    this.details.addEventListener("toggle", () => { if (this.open) onOpen(); });
  }

  get open() { return this.details.open; }

  show(reading, state) {
    const pred = state === "empty" ? null : (reading.predictions || [])[0];
    if (!pred || !pred.explanation || !pred.normalized) return this.clear("Draw a digit to see inside the network.");
    this.pred = pred;
    this.chosen = pred.explanation.target;
    this.note.textContent = reading.predictions.length > 1 ? `The first of ${reading.predictions.length} digits.` : "";
    [...this.bars.children].forEach((li, d) => {
      li.querySelector(".fill").style.height = `${(pred.probabilities[d] * 100).toFixed(1)}%`;
      li.classList.toggle("top", d === pred.digit);
    });
    this.maps.replaceChildren(...pred.explanation.layers.filter((l) => l.shape.length === 3).map((l) => {
      const fig = document.createElement("figure");
      const img = document.createElement("img");
      img.src = `data:image/png;base64,${l.png}`;
      img.alt = `${l.name}: ${l.shape[2]} feature maps of ${l.shape[0]} by ${l.shape[1]}`;
      const cap = document.createElement("figcaption");
      cap.textContent = `${l.name} · ${l.shape[2]} maps ${l.shape[0]}×${l.shape[1]}`;
      fig.append(img, cap);
      return fig;
    }));
    const img = new Image();
    img.onload = () => {
      if (this.pred !== pred) return;  // a newer answer arrived meanwhile
      this.ctx.drawImage(img, 0, 0);
      const data = this.ctx.getImageData(0, 0, 28, 28).data;
      this.pixels = Uint8ClampedArray.from({ length: 784 }, (_, i) => data[4 * i]);
      this.draw(this.chosen);
    };
    img.src = `data:image/png;base64,${pred.normalized}`;
  }

  // The input in grey, the class's saliency over it in red (scaled to its own peak).
  draw(d) {
    if (!this.pred || !this.pixels) return;
    const map = this.pred.explanation.saliency_by_class[d].flat();
    const peak = Math.max(...map) || 1;
    const out = this.ctx.createImageData(28, 28);
    for (let i = 0; i < 784; i++) {
      const g = this.pixels[i] * 0.6, s = Math.min(1, map[i] / peak);
      out.data.set([g * (1 - s) + 255 * s, g * (1 - s) + 40 * s, g * (1 - s) + 20 * s, 255], 4 * i);
    }
    this.ctx.putImageData(out, 0, 0);
    this.canvas.dataset.cls = String(d);
    this.caption.textContent = `Pixels that raised the score of ${d}${d === this.pred.digit ? " (the digit read)" : ""}`;
    [...this.bars.children].forEach((li, k) => li.classList.toggle("shown", k === d));
  }

  clear(text) {
    this.pred = null;
    this.pixels = null;
    this.ctx.clearRect(0, 0, 28, 28);
    delete this.canvas.dataset.cls;
    this.caption.textContent = text;
    this.note.textContent = "";
    this.maps.replaceChildren();
    [...this.bars.children].forEach((li) => {
      li.querySelector(".fill").style.height = "0";
      li.classList.remove("top", "shown");
    });
  }

  error() { this.clear("No explanation: the reading failed."); }
}
