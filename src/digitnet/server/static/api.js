// The API client: one request in flight at a time (a newer one aborts the older), bearer token when set.

export class Api {
  constructor(tokenInput) {
    this.tokenInput = tokenInput;
    this.inflight = null;
  }

  // Resolves to {ok, status, data}; to null when a newer request aborted this one. explain: ask
  // /api/explain, which answers the same plus an explanation of each digit.
  async predict(body, explain = false) {
    if (this.inflight) this.inflight.abort();
    this.inflight = new AbortController();
    const headers = typeof body === "string" ? { "Content-Type": "application/json" } : {};
    if (this.tokenInput.value) headers.Authorization = `Bearer ${this.tokenInput.value}`;
    try {
      const res = await fetch(explain ? "/api/explain" : "/api/predict", { method: "POST", body, headers, signal: this.inflight.signal });
      return { ok: res.ok, status: res.status, data: await res.json() };
    } catch (err) {
      if (err.name === "AbortError") return null;
      return { ok: false, status: 0, data: { error: `cannot reach the server (${err.message})` } };
    }
  }

  // Any other API call (no aborting): resolves to {ok, status, data}.
  async call(method, path, body) {
    const headers = body === undefined ? {} : { "Content-Type": "application/json" };
    if (this.tokenInput.value) headers.Authorization = `Bearer ${this.tokenInput.value}`;
    try {
      const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      return { ok: res.ok, status: res.status, data: res.status === 204 ? {} : await res.json() };
    } catch (err) {
      return { ok: false, status: 0, data: { error: `cannot reach the server (${err.message})` } };
    }
  }

  predictDrawing(dataURL, explain = false) { return this.predict(JSON.stringify({ image: dataURL }), explain); }

  predictFile(file, explain = false) {
    const form = new FormData();
    form.append("file", file);
    return this.predict(form, explain);
  }
}
