// Exponential moving average with bias correction (as TensorBoard smooths curves); gaps stay gaps.
export function smooth(values: (number | null | undefined)[], weight: number): (number | null)[] {
  if (weight <= 0) return values.map((value) => (value === undefined || value === null || !Number.isFinite(value) ? null : value));
  let last = 0;
  let count = 0;
  return values.map((value) => {
    if (value === undefined || value === null || !Number.isFinite(value)) return null;
    last = last * weight + (1 - weight) * value;
    count += 1;
    return last / (1 - weight ** count);
  });
}
