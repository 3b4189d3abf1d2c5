// Teach it your handwriting: under each answer a "Wrong? It's a [0-9]" control that saves the 28x28 the
// model saw as a sample, a counter of samples per digit, and a Personalize button that fine-tunes the
// model on them in the server's background. A panel of the result view (see view.js).

const $ = (id) => document.getElementById(id);

// The 28x28 grey pixels of a base64 PNG (what the model saw), as the API's `pixels`.
async function pixelsOf(png) {
  const img = new Image();
  img.src = `data:image/png;base64,${png}`;
  await img.decode();
  const c = document.createElement("canvas");
  c.width = c.height = 28;
  const ctx = c.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, 28, 28).data;
  return Array.from({ length: 784 }, (_, i) => d[4 * i]);
}

export class Teach {
  // onNewModel(): called once a new personal version answers, so that the page reads the drawing again.
  constructor(api, onNewModel) {
    this.api = api;
    this.onNewModel = onNewModel;
    this.box = $("teach");
    this.rows = $("corrections");
    this.counts = $("sample-counts");
    this.button = $("personalize");
    this.status = $("personalize-status");
    this.button.addEventListener("click", () => this.personalize());
    this.refresh();
  }

  show(reading, state) {
    this.rows.replaceChildren();
    if (state === "empty" || this.box.hidden) return;
    const marks = [...(reading.predictions || []).map((p) => ({ png: p.normalized, read: String(p.digit) })),
                   ...(reading.rejected || []).map((r) => ({ png: r.normalized, read: "not a digit" }))];
    marks.filter((m) => m.png).forEach((m, i) => this.rows.appendChild(this.row(m, i)));
  }

  row(mark, i) {
    const row = document.createElement("div");
    row.className = "correction";
    const options = [...Array(10).keys()].map((d) => `<option value="${d}">${d}</option>`).join("");
    row.innerHTML = `<img alt="mark ${i + 1} as the model saw it" width="28" height="28">
      <span>read ${mark.read}. Wrong? It's a</span>
      <select aria-label="the right digit for mark ${i + 1}"><option value="">…</option>${options}</select>
      <button type="button">Save</button><span class="saved" role="status"></span>`;
    row.querySelector("img").src = `data:image/png;base64,${mark.png}`;
    const [select, button, saved] = [row.querySelector("select"), row.querySelector("button"), row.querySelector(".saved")];
    button.addEventListener("click", async () => {
      if (select.value === "") { saved.textContent = "choose a digit first"; return; }
      const res = await this.api.call("POST", "/api/samples", { pixels: await pixelsOf(mark.png), label: Number(select.value) });
      saved.textContent = res.ok ? `saved as ${select.value}` : (res.data.error || `error ${res.status}`);
      this.refresh();
    });
    return row;
  }

  // The counter; the whole control hides on a server where learning is off (403).
  async refresh() {
    const res = await this.api.call("GET", "/api/samples");
    if (res.status === 403 || res.status === 401) { this.box.hidden = true; return; }
    this.box.hidden = false;
    if (!res.ok) return;
    const taught = Object.entries(res.data.counts).filter(([, n]) => n > 0);
    this.counts.textContent = taught.length
      ? `Your samples: ${taught.map(([d, n]) => `${d}: ${n}`).join(", ")} (${res.data.total} in all)`
      : "No samples yet: correct a wrong answer to teach it your handwriting.";
    this.counts.dataset.total = String(res.data.total);
  }

  async personalize() {
    const started = await this.api.call("POST", "/api/personalize");
    if (!started.ok) { this.status.textContent = started.data.error || `error ${started.status}`; return; }
    this.button.disabled = true;
    let s = started.data;
    while (["starting", "running"].includes(s.state)) {
      this.status.textContent = `Personalizing… ${Math.round(100 * s.progress)}%${s.message ? ` (${s.message})` : ""}`;
      await new Promise((r) => setTimeout(r, 1000));
      const res = await this.api.call("GET", "/api/personalize");
      if (!res.ok) break;
      s = res.data;
    }
    this.button.disabled = false;
    if (s.state !== "done") { this.status.textContent = `Personalization failed: ${s.error || s.state}`; return; }
    const pct = (v, d = 0) => `${(100 * v).toFixed(d)}%`;
    this.status.dataset.version = String(s.version);
    this.status.textContent = `Version ${s.version}: your held-out samples ${pct(s.before.user)} → ${pct(s.after.user)}, `
      + `MNIST ${pct(s.before.validation, 2)} → ${pct(s.after.validation, 2)}. Waiting for the server to switch…`;
    for (let i = 0; i < 30; i++) {  // every server process swaps within a few seconds
      const m = await this.api.call("GET", "/api/model");
      if (m.ok && m.data.version === String(s.version)) {
        this.status.textContent = this.status.textContent.replace("Waiting for the server to switch…", "Now answering.");
        this.refresh();
        this.onNewModel();
        return;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  error() { this.rows.replaceChildren(); }
}
