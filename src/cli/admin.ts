import type { Command } from 'commander';

/** Placeholder until this command group lands. */
export function registerAdminCommands(_program: Command): void {}
