// The API client: one request in flight at a time (a newer one aborts the older), bearer token when set.

export class Api {
  constructor(tokenInput) {
    this.tokenInput = tokenInput;
    this.inflight = null;
  }

  // Resolves to {ok, status, data}; to null when a newer request aborted this one.
  async predict(body) {
    if (this.inflight) this.inflight.abort();
    this.inflight = new AbortController();
    const headers = typeof body === "string" ? { "Content-Type": "application/json" } : {};
    if (this.tokenInput.value) headers.Authorization = `Bearer ${this.tokenInput.value}`;
    try {
      const res = await fetch("/api/predict", { method: "POST", body, headers, signal: this.inflight.signal });
      return { ok: res.ok, status: res.status, data: await res.json() };
    } catch (err) {
      if (err.name === "AbortError") return null;
      return { ok: false, status: 0, data: { error: `cannot reach the server (${err.message})` } };
    }
  }

  predictDrawing(dataURL) { return this.predict(JSON.stringify({ image: dataURL })); }

  predictFile(file) {
    const form = new FormData();
    form.append("file", file);
    return this.predict(form);
  }
}
