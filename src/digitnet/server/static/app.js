// digitnet drawing page: pointer strokes on a canvas, debounced live prediction, upload, undo and clear.
(() => {
  "use strict";
  const canvas = document.getElementById("canvas");
  const ctx = canvas.getContext("2d");
  const answer = document.getElementById("answer");
  const confidence = document.getElementById("confidence");
  const message = document.getElementById("message");
  const normalized = document.getElementById("normalized");
  const bars = document.getElementById("bars");
  const barsCaption = document.getElementById("bars-caption");
  const tokenRow = document.getElementById("token-row");
  const tokenInput = document.getElementById("token");
  const strokes = [];  // each stroke: a list of [x, y] in canvas pixels
  let current = null;
  let timer = null;
  let inflight = null;

  // A pen-like width relative to the canvas: thick enough to read like MNIST after scaling.
  const penWidth = () => Math.max(8, canvas.height / 14);

  for (let d = 0; d < 10; d++) {
    const li = document.createElement("li");
    li.innerHTML = `<span>${d}</span><span class="bar"><span class="fill"></span></span><span class="pct">0%</span>`;
    li.setAttribute("aria-label", `digit ${d}: 0 percent`);
    bars.appendChild(li);
  }

  function redraw() {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.strokeStyle = "#111";
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.lineWidth = penWidth();
    for (const s of strokes.concat(current ? [current] : [])) {
      ctx.beginPath();
      ctx.moveTo(s[0][0], s[0][1]);
      for (const [x, y] of s.slice(1)) ctx.lineTo(x, y);
      if (s.length === 1) ctx.lineTo(s[0][0] + 0.1, s[0][1]);
      ctx.stroke();
    }
  }

  function point(e) {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
  }

  canvas.addEventListener("pointerdown", (e) => {
    canvas.setPointerCapture(e.pointerId);
    current = [point(e)];
    redraw();
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!current) return;
    current.push(point(e));
    redraw();
    schedule();
  });
  const finish = () => {
    if (!current) return;
    strokes.push(current);
    current = null;
    redraw();
    schedule(80);
  };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);

  document.getElementById("undo").addEventListener("click", () => {
    strokes.pop();
    redraw();
    strokes.length ? schedule(0) : reset();
  });
  document.getElementById("clear").addEventListener("click", () => {
    strokes.length = 0;
    redraw();
    reset();
  });
  document.getElementById("file").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    const form = new FormData();
    form.append("file", file);
    await send(form);
    e.target.value = "";
  });

  function schedule(delay = 250) {  // debounced: predict when the pen pauses
    clearTimeout(timer);
    timer = setTimeout(() => send(JSON.stringify({ image: canvas.toDataURL("image/png") })), delay);
  }

  function reset() {
    clearTimeout(timer);
    show({ digits: null, reason: null, predictions: [] }, "empty");
  }

  async function send(body) {
    if (inflight) inflight.abort();
    inflight = new AbortController();
    const headers = typeof body === "string" ? { "Content-Type": "application/json" } : {};
    if (tokenInput.value) headers.Authorization = `Bearer ${tokenInput.value}`;
    try {
      const res = await fetch("/api/predict", { method: "POST", body, headers, signal: inflight.signal });
      const data = await res.json();
      if (res.status === 401) tokenRow.hidden = false;
      if (!res.ok) return showError(data.error || `error ${res.status}`);
      show(data);
    } catch (err) {
      if (err.name !== "AbortError") showError(`cannot reach the server (${err.message})`);
    }
  }

  function show(data, state) {
    message.textContent = "";
    const preds = data.predictions || [];
    if (state === "empty") {
      answer.dataset.state = "empty";
      answer.textContent = "Draw a digit";
    } else if (data.digits === null) {
      answer.dataset.state = "none";
      answer.textContent = `No digit (${data.reason})`;
    } else {
      answer.dataset.state = "digits";
      answer.textContent = data.digits;
    }
    const first = preds[0];
    confidence.textContent = first
      ? (preds.length === 1 ? `confidence ${(first.probability * 100).toFixed(1)}%`
                            : `${preds.length} digits, lowest confidence ${(Math.min(...preds.map(p => p.probability)) * 100).toFixed(1)}%`)
      : "";
    if (preds.some(p => p.low_confidence)) message.textContent = "Low confidence: the drawing may not be a clear digit.";
    barsCaption.textContent = preds.length > 1 ? `Probability of each digit, for the first of ${preds.length}`
                                               : "Probability of each digit";
    const probs = first ? first.probabilities : new Array(10).fill(0);
    const top = first ? first.digit : -1;
    [...bars.children].forEach((li, d) => {
      li.querySelector(".fill").style.width = `${(probs[d] * 100).toFixed(1)}%`;
      li.querySelector(".pct").textContent = `${(probs[d] * 100).toFixed(0)}%`;
      li.classList.toggle("top", d === top);
      li.setAttribute("aria-label", `digit ${d}: ${(probs[d] * 100).toFixed(0)} percent`);
    });
    if (first && first.normalized) {
      normalized.src = `data:image/png;base64,${first.normalized}`;
      normalized.hidden = false;
    } else {
      normalized.hidden = true;
    }
  }

  function showError(text) {
    answer.dataset.state = "error";
    answer.textContent = "Error";
    confidence.textContent = "";
    message.textContent = text;
  }

  redraw();
  reset();
})();
