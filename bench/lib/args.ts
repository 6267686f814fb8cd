// Parsers for the benchmark programs' numeric options (commander calls them with the option's text).
import { InvalidArgumentError } from 'commander';

export const positive = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`not a positive number: ${v}`);
  return n;
};

export const nonNegative = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`not a non-negative number: ${v}`);
  return n;
};
