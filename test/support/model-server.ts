// Re-exports the scripted model server (a test double speaking the OpenAI and Anthropic wire
// formats) for tests, so they import it from test/support like every other fake.
export {
  conversationStep,
  offersNoTools,
  loadScriptFile,
  parseScript,
  runModelServerCommand,
  startScriptedModelServer,
  TEST_DOUBLE_HEADER,
  TEST_DOUBLE_NAME,
  type ModelScript,
  type RecordedRequest,
  type ScriptedModelServer,
  type ScriptedModelServerOptions,
  type ScriptedTurn,
} from '../../src/dev/model-server.js';
