/**
 * Invoice totals. Amounts are integers in cents so that sums are exact.
 */

/** The sum of quantity × unit price over the invoice's lines, in cents. */
export function subtotal(lines) {
  return lines.reduce((sum, line) => sum + line.quantity * line.unitCents, 0);
}

/**
 * The discount in cents for a percentage between 0 and 100, rounded to the nearest cent.
 */
export function discount(subtotalCents, percent) {
  if (percent < 0 || percent > 100) throw new RangeError(`discount must be between 0 and 100, got ${percent}`);
  return Math.round(subtotalCents * percent / 100);
}

/** What the customer pays: the subtotal less the discount. */
export function total(lines, discountPercent = 0) {
  const sub = subtotal(lines);
  return sub + discount(sub, discountPercent);
}
