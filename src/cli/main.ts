/**
 * The `airlock` binary: one commander program, one file per command group under cli/.
 * Nothing runs at import time; `main` builds the program and parses argv.
 */
import { Command, CommanderError } from 'commander';
import { registerAgentCommands } from './agent.js';
import { registerDevCommands } from './dev.js';
import { registerEnvCommands } from './env.js';
import { registerAdminCommands } from './admin.js';
import { registerTaskCommands } from './task.js';
import { registerServerCommand } from './server.js';
import { registerWorkerCommands } from './worker.js';
import { registerUpCommand } from './up.js';

export const VERSION = '0.1.0';

export function buildProgram(): Command {
  const program = new Command('airlock')
    .description('Run autonomous coding agents on infrastructure you own.')
    .version(VERSION)
    .showHelpAfterError()
    .exitOverride();
  registerUpCommand(program);
  registerServerCommand(program);
  registerWorkerCommands(program);
  registerTaskCommands(program);
  registerEnvCommands(program);
  registerAdminCommands(program);
  registerAgentCommands(program);
  registerDevCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return;
    }
    throw err;
  }
}
