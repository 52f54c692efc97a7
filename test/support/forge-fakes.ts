// Wire-level fakes of the two forge APIs the worker calls: GitHub's REST API (pull requests) and
// GitLab's REST API v4 (merge requests). Real HTTP servers on loopback that check the path, the
// auth header and the body as the real services would, answer in their formats (including their
// error bodies), and record every request for assertions.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  /** The raw path, as sent (percent-encoding kept). */
  path: string;
  headers: http.IncomingHttpHeaders;
  body: unknown;
}

export interface ForgeFake {
  /** Base URL to configure as api_url. */
  apiUrl: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

interface FakeRepository {
  default_branch: string;
  /** Head branches that exist on the forge (a PR for any other head is refused). */
  branches?: string[];
}

type Handler = (req: RecordedRequest) => { status: number; body: unknown };

async function serve(prefix: string, handle: Handler): Promise<ForgeFake> {
  const requests: RecordedRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = undefined;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        body = text;
      }
      const rawPath = (req.url ?? '/').split('?')[0]!;
      const recorded: RecordedRequest = { method: req.method ?? 'GET', path: rawPath, headers: req.headers, body };
      requests.push(recorded);
      const answer = rawPath.startsWith(prefix) ? handle({ ...recorded, path: rawPath.slice(prefix.length) }) : { status: 404, body: { message: 'Not Found' } };
      res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    apiUrl: `http://127.0.0.1:${port}${prefix}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * GitHub: `GET /repos/{owner}/{repo}`, `POST /repos/{owner}/{repo}/pulls`. Auth: `Authorization:
 * Bearer <token>` (401 "Bad credentials" otherwise); JSON body with title, head, base (strings),
 * optional body and draft; 422 "Validation Failed" for a missing field, an unknown head or a
 * second PR for the same head.
 */
export function startGitHubFake(options: { token: string; repositories: Record<string, FakeRepository> }): Promise<ForgeFake> {
  const open = new Set<string>();
  let number = 0;
  return serve('', (req) => {
    if (req.headers.authorization !== `Bearer ${options.token}`) return { status: 401, body: { message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest' } };
    if (!String(req.headers.accept ?? '').includes('application/vnd.github+json')) return { status: 415, body: { message: 'Unsupported Media Type' } };
    const match = /^\/repos\/([^/]+)\/([^/]+)(\/pulls)?$/.exec(req.path);
    const name = match ? `${decodeURIComponent(match[1]!)}/${decodeURIComponent(match[2]!)}` : '';
    const repository = options.repositories[name];
    if (!match || !repository) return { status: 404, body: { message: 'Not Found' } };
    if (!match[3] && req.method === 'GET') return { status: 200, body: { full_name: name, default_branch: repository.default_branch } };
    if (!match[3] || req.method !== 'POST') return { status: 404, body: { message: 'Not Found' } };
    if (req.headers['content-type'] !== 'application/json') return { status: 400, body: { message: 'Problems parsing JSON' } };
    const body = req.body as Record<string, unknown> | undefined;
    for (const field of ['title', 'head', 'base'] as const) {
      if (typeof body?.[field] !== 'string' || !body[field]) return { status: 422, body: { message: 'Validation Failed', errors: [{ resource: 'PullRequest', code: 'missing_field', field }] } };
    }
    if (body!.draft !== undefined && typeof body!.draft !== 'boolean') return { status: 422, body: { message: 'Validation Failed', errors: [{ field: 'draft', code: 'invalid' }] } };
    const head = body!.head as string;
    if (repository.branches && !repository.branches.includes(head)) {
      return { status: 422, body: { message: 'Validation Failed', errors: [{ resource: 'PullRequest', field: 'head', code: 'invalid' }] } };
    }
    if (open.has(`${name}:${head}`)) {
      return { status: 422, body: { message: 'Validation Failed', errors: [{ resource: 'PullRequest', code: 'custom', message: `A pull request already exists for ${name.split('/')[0]}:${head}.` }] } };
    }
    open.add(`${name}:${head}`);
    number++;
    return { status: 201, body: { number, html_url: `https://github.example/${name}/pull/${number}`, draft: body!.draft ?? false, head: { ref: head }, base: { ref: body!.base } } };
  });
}

/**
 * GitLab: `GET /projects/:id`, `POST /projects/:id/merge_requests`, with `:id` the URL-encoded
 * full path (group%2Fsub%2Fproject). Auth: `PRIVATE-TOKEN` (401 "401 Unauthorized" otherwise);
 * JSON body with source_branch, target_branch, title; 409 for a second open MR of a branch.
 */
export function startGitLabFake(options: { token: string; projects: Record<string, FakeRepository> }): Promise<ForgeFake> {
  const open = new Set<string>();
  let iid = 0;
  return serve('/api/v4', (req) => {
    if (req.headers['private-token'] !== options.token) return { status: 401, body: { message: '401 Unauthorized' } };
    const match = /^\/projects\/([^/]+)(\/merge_requests)?$/.exec(req.path);
    // The id must be encoded as one path segment: a raw "/" in it is a different route.
    const name = match ? decodeURIComponent(match[1]!) : '';
    const project = options.projects[name];
    if (!match || !project) return { status: 404, body: { message: '404 Project Not Found' } };
    if (!match[2] && req.method === 'GET') return { status: 200, body: { path_with_namespace: name, default_branch: project.default_branch } };
    if (!match[2] || req.method !== 'POST') return { status: 404, body: { error: '404 Not Found' } };
    const body = req.body as Record<string, unknown> | undefined;
    for (const field of ['source_branch', 'target_branch', 'title'] as const) {
      if (typeof body?.[field] !== 'string' || !body[field]) return { status: 400, body: { error: `${field} is missing` } };
    }
    const source = body!.source_branch as string;
    if (open.has(`${name}:${source}`)) return { status: 409, body: { message: [`Another open merge request already exists for this source branch: !${iid}`] } };
    open.add(`${name}:${source}`);
    iid++;
    return { status: 201, body: { iid, web_url: `https://gitlab.example/${name}/-/merge_requests/${iid}`, title: body!.title, draft: /^draft:/i.test(body!.title as string) } };
  });
}
