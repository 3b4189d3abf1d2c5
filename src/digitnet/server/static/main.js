// digitnet drawing page: wires the pad, the API client and the result view together.
import { Api } from "./api.js";
import { Boxes } from "./boxes.js";
import { Pad } from "./draw.js";
import { Inside } from "./inside.js";
import { Teach } from "./teach.js";
import { ResultView } from "./view.js";

const view = new ResultView();
view.addPanel(new Boxes(document.getElementById("boxes"), document.getElementById("canvas")));
// Opening the panel reads the drawing again, explained; while it is open every read is explained.
const inside = new Inside(() => { if (!pad.empty) pad.onChange(0); });
view.addPanel(inside);
const api = new Api(document.getElementById("token"));
const tokenRow = document.getElementById("token-row");
// A new personal version answers: read what is drawn again, so the user sees its answer.
view.addPanel(new Teach(api, () => { if (!pad.empty) pad.onChange(0); }));
let timer = null;

// fromCanvas: the answer is about the drawing (its boxes can be drawn over it), not an uploaded file.
async function read(request, fromCanvas) {
  const res = await request;
  if (res === null) return;  // superseded by a newer drawing
  if (res.status === 401) tokenRow.hidden = false;
  res.ok ? view.show({ ...res.data, fromCanvas }) : view.error(res.data.error || `error ${res.status}`);
}

const pad = new Pad(document.getElementById("canvas"), (delay) => {
  clearTimeout(timer);
  timer = setTimeout(() => read(api.predictDrawing(pad.dataURL(), inside.open), true), delay);
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
  await read(api.predictFile(file, inside.open), false);
  e.target.value = "";
});

reset();
