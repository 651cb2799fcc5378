// One requestAnimationFrame for all drawing: messages only mark things dirty; whatever is dirty is
// drawn once in the next frame (and not at all while the tab is hidden, where rAF does not run).
// Drawing code only writes to the DOM, so a frame never forces a layout in the middle.

const pending = new Set();
let requested = false;

function run() {
  requested = false;
  const work = [...pending];
  pending.clear();
  for (const fn of work) fn();
}

export function schedule(fn) {
  pending.add(fn);
  if (!requested) {
    requested = true;
    requestAnimationFrame(run);
  }
}

// Set a text node's value only when it changed (no DOM write, no style recalc otherwise).
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}
