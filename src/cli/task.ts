import type { Command } from 'commander';

/** Placeholder until this command group lands. */
export function registerTaskCommands(_program: Command): void {}
