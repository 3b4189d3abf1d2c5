// digitnet drawing page: wires the pad, the API client and the result view together.
import { Api } from "./api.js";
import { Pad } from "./draw.js";
import { ResultView } from "./view.js";

const view = new ResultView();
const api = new Api(document.getElementById("token"));
const tokenRow = document.getElementById("token-row");
let timer = null;

async function read(request) {
  const res = await request;
  if (res === null) return;  // superseded by a newer drawing
  if (res.status === 401) tokenRow.hidden = false;
  res.ok ? view.show(res.data) : view.error(res.data.error || `error ${res.status}`);
}

const pad = new Pad(document.getElementById("canvas"), (delay) => {
  clearTimeout(timer);
  timer = setTimeout(() => read(api.predictDrawing(pad.dataURL())), delay);
});

function reset() {
  clearTimeout(timer);
  view.reset();
}

document.getElementById("undo").addEventListener("click", () => {
  pad.undo();
  pad.empty ? reset() : pad.onChange(0);
});
document.getElementById("clear").addEventListener("click", () => {
  pad.clear();
  reset();
});
document.getElementById("file").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  await read(api.predictFile(file));
  e.target.value = "";
});

reset();
