/**
 * The CLI client's pure parts, in-process: where the server URL and key come from (flags, then
 * environment, then the config file; errors that say all three ways), the SSE frame parser, and
 * the table formatter.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configFilePath, parseSse, resolveClientConfig } from '../../src/cli/client.js';
import { formatTable, summarize } from '../../src/cli/output.js';

let home: string;

beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), 'airlock-cli-config-'));
});

afterEach(() => {
  rmSync(home, { recursive: true, force: true });
});

function writeConfig(text: string, base = join(home, '.config')): string {
  mkdirSync(join(base, 'airlock'), { recursive: true });
  const path = join(base, 'airlock', 'config.yaml');
  writeFileSync(path, text);
  return path;
}

describe('resolveClientConfig', () => {
  it('takes flags over the environment over the config file, per value', async () => {
    writeConfig('server: http://file:1\napi_key: file-key\n');
    const env = { HOME: home, AIRLOCK_SERVER: 'http://env:2', AIRLOCK_API_KEY: 'env-key' };
    expect(await resolveClientConfig({ server: 'http://flag:3/', apiKey: 'flag-key' }, env)).toEqual({ server: 'http://flag:3', apiKey: 'flag-key' });
    expect(await resolveClientConfig({}, env)).toEqual({ server: 'http://env:2', apiKey: 'env-key' });
    expect(await resolveClientConfig({}, { HOME: home, AIRLOCK_API_KEY: 'env-key' })).toEqual({ server: 'http://file:1', apiKey: 'env-key' });
    expect(await resolveClientConfig({}, { HOME: home })).toEqual({ server: 'http://file:1', apiKey: 'file-key' });
  });

  it('reads $XDG_CONFIG_HOME/airlock/config.yaml when XDG_CONFIG_HOME is absolute', async () => {
    const xdg = join(home, 'xdg');
    writeConfig('server: https://xdg.example\napi_key: " xdg-key\\n"\n', xdg);
    expect(configFilePath({ HOME: home, XDG_CONFIG_HOME: xdg })).toBe(join(xdg, 'airlock', 'config.yaml'));
    expect(configFilePath({ HOME: home, XDG_CONFIG_HOME: 'relative' })).toBe(join(home, '.config', 'airlock', 'config.yaml'));
    expect(await resolveClientConfig({}, { HOME: home, XDG_CONFIG_HOME: xdg })).toEqual({ server: 'https://xdg.example', apiKey: 'xdg-key' });
  });

  it('names all three ways when the server or the key is missing', async () => {
    const path = join(home, '.config', 'airlock', 'config.yaml');
    await expect(resolveClientConfig({}, { HOME: home })).rejects.toThrow(`no Airlock server given — pass --server URL, set AIRLOCK_SERVER, or put "server: URL" in ${path}`);
    const missingKey = resolveClientConfig({ server: 'http://x' }, { HOME: home });
    await expect(missingKey).rejects.toThrow(/no API key given — set AIRLOCK_API_KEY, put "api_key: KEY" in .*config\.yaml, or pass --api-key KEY/);
  });

  it('refuses unknown keys in the config file, naming the key', async () => {
    const path = writeConfig('server: http://x\napi_key: k\napikey: typo\n');
    await expect(resolveClientConfig({}, { HOME: home })).rejects.toThrow(`invalid config file ${path}: (root): unknown field "apikey"`);
  });

  it('refuses broken YAML and non-mappings with the file named', async () => {
    const path = writeConfig('server: [unclosed\n');
    await expect(resolveClientConfig({}, { HOME: home })).rejects.toThrow(`the config file ${path} is not valid YAML`);
    writeConfig('- a\n- b\n');
    await expect(resolveClientConfig({}, { HOME: home })).rejects.toThrow(/must be a mapping/);
  });

  it('does not read the config file when flags and environment cover everything', async () => {
    writeConfig('not: [valid');
    expect(await resolveClientConfig({ server: 'http://a' }, { HOME: home, AIRLOCK_API_KEY: 'k' })).toEqual({ server: 'http://a', apiKey: 'k' });
  });

  it('refuses a server that is not an http(s) URL, naming where it came from', async () => {
    await expect(resolveClientConfig({ server: 'localhost:7070', apiKey: 'k' }, { HOME: home })).rejects.toThrow(/"localhost:7070" \(from --server\) is not an http\(s\) URL/);
    await expect(resolveClientConfig({ apiKey: 'k' }, { HOME: home, AIRLOCK_SERVER: 'ftp://x' })).rejects.toThrow(/from AIRLOCK_SERVER/);
  });
});

describe('parseSse', () => {
  async function frames(chunks: string[]) {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const c of chunks) controller.enqueue(new TextEncoder().encode(c));
        controller.close();
      },
    });
    const out = [];
    for await (const f of parseSse(body)) out.push(f);
    return out;
  }

  it('parses ids, event names, multi-line data and comments, across chunk boundaries and line endings', async () => {
    expect(
      await frames(['retry: 2000\n\n: keep-alive\n\nid: 1.1\nevent: trans', 'cript\ndata: {"a":1}\n\n', 'event: task\r\ndata: x\r\ndata: y\r\n\r\n', 'data: plain\n\n', 'id: 9.9\n\n']),
    ).toEqual([
      { id: '1.1', event: 'transcript', data: '{"a":1}' },
      { event: 'task', data: 'x\ny' },
      { event: 'message', data: 'plain' },
    ]);
  });

  it('splits multi-byte characters across chunks correctly', async () => {
    const bytes = new TextEncoder().encode('data: héllo\n\n');
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes.slice(0, 8));
        controller.enqueue(bytes.slice(8));
        controller.close();
      },
    });
    const out = [];
    for await (const f of parseSse(body)) out.push(f);
    expect(out).toEqual([{ event: 'message', data: 'héllo' }]);
  });
});

describe('output helpers', () => {
  it('aligns columns without trailing spaces', () => {
    expect(formatTable(['ID', 'STATE', 'TITLE'], [['tsk_1', 'queued', ''], ['tsk_22', 'running', 'x']])).toBe('ID      STATE    TITLE\ntsk_1   queued\ntsk_22  running  x');
  });

  it('summarizes to one line with an ellipsis when something was left out', () => {
    expect(summarize('one', 10)).toBe('one');
    expect(summarize('one\ntwo', 10)).toBe('one …');
    expect(summarize('abcdefghijkl', 5)).toBe('abcd…');
  });
});
