// The squarified treemap layout (Bruls, Huizing and van Wijk, 2000): rows of rectangles laid
// along the shorter side, a row growing while its worst aspect ratio improves. It runs in the
// page: html.ts embeds this function's own source, so it may use nothing outside itself.

/**
 * Rectangles `[x, y, width, height]` for `values` (largest first, all positive), in their order,
 * that tile the rectangle at `x, y` of `w × h`, each with an area proportional to its value.
 */
export function squarify(values: readonly number[], x: number, y: number, w: number, h: number): number[][] {
  const out: number[][] = [];
  let total = 0;
  for (const v of values) total += v;
  if (!(total > 0) || !(w > 0) || !(h > 0)) return values.map(() => [x, y, 0, 0]);
  const scale = (w * h) / total;
  let i = 0;
  while (i < values.length) {
    const side = Math.min(w, h);
    let rowSum = 0;
    let worst = Infinity;
    let j = i;
    while (j < values.length) {
      const s = rowSum + values[j]! * scale;
      // The worst ratio of a row is that of its largest (first) or smallest (last) rectangle.
      const ratio = Math.max((side * side * values[i]! * scale) / (s * s), (s * s) / (side * side * values[j]! * scale));
      if (ratio > worst) break;
      worst = ratio;
      rowSum = s;
      j++;
    }
    const thick = rowSum / side;
    let along = 0;
    for (let k = i; k < j; k++) {
      // The last rectangle of the last row takes what rounding left.
      const len = k === j - 1 && j === values.length ? side - along : (values[k]! * scale) / thick;
      out.push(w >= h ? [x, y + along, thick, len] : [x + along, y, len, thick]);
      along += len;
    }
    if (w >= h) {
      x += thick;
      w -= thick;
    } else {
      y += thick;
      h -= thick;
    }
    i = j;
  }
  return out;
}
