import type { Command } from 'commander';

/** Placeholder until this command group lands. */
export function registerUpCommand(_program: Command): void {}
