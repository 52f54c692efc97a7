import type { Command } from 'commander';

/** Placeholder until this command group lands. */
export function registerServerCommand(_program: Command): void {}
