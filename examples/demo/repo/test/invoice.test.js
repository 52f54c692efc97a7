import { test } from 'node:test';
import assert from 'node:assert/strict';
import { discount, subtotal, total } from '../src/invoice.js';

const lines = [
  { description: 'Widget', quantity: 3, unitCents: 1250 },
  { description: 'Gadget', quantity: 1, unitCents: 4999 },
];

test('subtotal adds every line', () => {
  assert.equal(subtotal(lines), 8749);
});

test('discount rounds to the nearest cent', () => {
  assert.equal(discount(8749, 10), 875);
});

test('total takes the discount off the subtotal', () => {
  assert.equal(total(lines, 10), 7874);
});

test('total without a discount is the subtotal', () => {
  assert.equal(total(lines), 8749);
});
