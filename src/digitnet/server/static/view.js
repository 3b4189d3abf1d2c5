// The result view: the answer, its confidence, what the model saw and the bars. Other panels plug in
// with addPanel({show(reading, state), error(message)}), and are shown every result the page gets.

const $ = (id) => document.getElementById(id);

export class ResultView {
  constructor() {
    this.answer = $("answer");
    this.confidence = $("confidence");
    this.message = $("message");
    this.normalized = $("normalized");
    this.bars = $("bars");
    this.barsCaption = $("bars-caption");
    this.panels = [];
    for (let d = 0; d < 10; d++) {
      const li = document.createElement("li");
      li.innerHTML = `<span>${d}</span><span class="bar"><span class="fill"></span></span><span class="pct">0%</span>`;
      li.setAttribute("aria-label", `digit ${d}: 0 percent`);
      this.bars.appendChild(li);
    }
  }

  addPanel(panel) { this.panels.push(panel); }

  // reading: the API's result object; state "empty" for a blank canvas.
  show(reading, state) {
    this.message.textContent = "";
    const preds = reading.predictions || [];
    if (state === "empty") {
      this.answer.dataset.state = "empty";
      this.answer.textContent = "Draw a digit";
    } else if (reading.digits === null) {
      this.answer.dataset.state = "none";
      this.answer.textContent = { "not a digit": "Not a digit", "blank image": "Blank" }[reading.reason]
                                || `No digit (${reading.reason})`;
    } else {
      this.answer.dataset.state = "digits";
      this.answer.textContent = reading.digits;
    }
    const first = preds[0];
    const pct = (p) => (p * 100).toFixed(1);
    this.confidence.textContent = first
      ? (preds.length === 1 ? `confidence ${pct(first.probability)}%`
                            : `${preds.length} digits, lowest confidence ${pct(Math.min(...preds.map(p => p.probability)))}%`)
      : "";
    const rejected = (reading.rejected || []).length;
    if (preds.some(p => p.low_confidence)) this.message.textContent = "Low confidence: the drawing may not be a clear digit.";
    else if (rejected && preds.length) this.message.textContent = `${rejected} mark${rejected > 1 ? "s are" : " is"} not a digit.`;
    this.barsCaption.textContent = preds.length > 1 ? `Probability of each digit, for the first of ${preds.length}`
                                                    : "Probability of each digit";
    const probs = first ? first.probabilities : new Array(10).fill(0);
    const top = first ? first.digit : -1;
    [...this.bars.children].forEach((li, d) => {
      li.querySelector(".fill").style.width = `${(probs[d] * 100).toFixed(1)}%`;
      li.querySelector(".pct").textContent = `${(probs[d] * 100).toFixed(0)}%`;
      li.classList.toggle("top", d === top);
      li.setAttribute("aria-label", `digit ${d}: ${(probs[d] * 100).toFixed(0)} percent`);
    });
    if (first && first.normalized) {
      this.normalized.src = `data:image/png;base64,${first.normalized}`;
      this.normalized.hidden = false;
    } else {
      this.normalized.hidden = true;
    }
    for (const p of this.panels) p.show(reading, state);
  }

  error(text) {
    this.answer.dataset.state = "error";
    this.answer.textContent = "Error";
    this.confidence.textContent = "";
    this.message.textContent = text;
    for (const p of this.panels) if (p.error) p.error(text);
  }

  reset() { this.show({ digits: null, reason: null, predictions: [], rejected: [] }, "empty"); }
}
