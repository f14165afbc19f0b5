// granary's conformance authorization server: oidc-provider (OpenID Certified) on 127.0.0.1.
//
// Run by `cargo xtask` from the folder that holds node_modules (target/npm/oidc-provider/,
// where the xtask copies this file), never by hand against anything but 127.0.0.1:
//
//   node server.mjs --clients clients.json [--port 0] [--access-token-ttl 3600]
//                   [--refresh-token-ttl 86400] [--rotate-refresh-token default|always|never]
//                   [--verbose]
//
// clients.json is either an array of clients or { "scopes": [...], "clients": [...] }. A client
// uses oidc-provider's metadata names: client_id, client_secret, token_endpoint_auth_method
// (client_secret_basic | client_secret_post | none), redirect_uris, and scope (the scopes it may
// ask for; omitted = any), plus one field of ours: access_token_ttl (seconds, overrides
// --access-token-ttl for that client). grant_types default to authorization_code + refresh_token; a public
// client (method none) is a native application so that it may use a loopback redirect URI.
// The provider's scopes are openid, offline_access, email, profile, phone, and every scope
// named in the file.
//
// When it listens it prints one line to stdout, the issuer URL (http://127.0.0.1:<port>), and
// nothing else on stdout. It exits by itself when its stdin closes, so a parent that dies never
// leaves it running. Diagnostics go to stderr.
//
// Beyond oidc-provider's own routes (/auth, /token, /token/revocation, /me, /jwks,
// /.well-known/openid-configuration, devInteractions' /interaction/<uid> forms):
//   GET  /__granary/stats        -> {"token_requests":{"<grant_type>":n},"token_errors":{...},"total":n}
//   POST /__granary/stats/reset  -> 204, counters back to zero
//   ANY  /__granary/page         -> 200, an HTML page (what a token URL that points at a web
//                                   page, such as a sign-in or documentation page, answers)
//   POST /__granary/revoke-access-token (form token=...)
//                                -> 204 when that access token existed and is now revoked, 404
//                                   otherwise; unlike /token/revocation (which revokes the whole
//                                   grant, refresh token included), the grant stays usable: a
//                                   provider that revoked one access token
// With --introspection, token introspection (RFC 7662) is on at /token/introspection: a
// resource server of the run authenticates as a client of the clients file. It is off
// otherwise: a provider without it is what the suites that need a token of unknown expiry
// (no expires_in, nothing to ask) test against, since granary asks an introspection endpoint
// it discovers.
// Refresh tokens are issued when the scope has offline_access and the request prompt=consent.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

function parseArgs(argv) {
  const options = {
    clients: undefined,
    port: 0,
    accessTokenTtl: 3600,
    refreshTokenTtl: 14 * 24 * 3600,
    rotateRefreshToken: 'default',
    introspection: false,
    verbose: false,
  };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    const value = () => {
      i += 1;
      if (i >= argv.length) fail(`${arg} needs a value`);
      return argv[i];
    };
    const seconds = () => {
      const n = Number.parseInt(value(), 10);
      if (!Number.isInteger(n) || n <= 0) fail(`${arg} needs a positive number of seconds`);
      return n;
    };
    switch (arg) {
      case '--clients': options.clients = value(); break;
      case '--port': options.port = Number.parseInt(value(), 10); break;
      case '--access-token-ttl': options.accessTokenTtl = seconds(); break;
      case '--refresh-token-ttl': options.refreshTokenTtl = seconds(); break;
      case '--rotate-refresh-token': options.rotateRefreshToken = value(); break;
      case '--introspection': options.introspection = true; break;
      case '--verbose': options.verbose = true; break;
      default: fail(`unknown argument ${arg}`);
    }
  }
  if (!options.clients) fail('--clients <file.json> is required');
  if (!['default', 'always', 'never'].includes(options.rotateRefreshToken)) {
    fail('--rotate-refresh-token is one of default, always, never');
  }
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
    fail('--port is a port number (0 = any free port)');
  }
  return options;
}

function fail(message) {
  process.stderr.write(`server.mjs: ${message}\n`);
  process.exit(2);
}

function loadClients(path) {
  let parsed;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    fail(`cannot read the clients file ${path}: ${error.message}`);
  }
  const clients = Array.isArray(parsed) ? parsed : parsed.clients;
  const extraScopes = Array.isArray(parsed) ? [] : (parsed.scopes ?? []);
  if (!Array.isArray(clients) || clients.length === 0) fail(`${path} declares no clients`);
  const scopes = new Set(['openid', 'offline_access', 'email', 'profile', 'phone', ...extraScopes]);
  const accessTokenTtls = new Map();
  const metadata = clients.map(({ access_token_ttl: ttl, ...client }) => {
    if (!client.client_id || !Array.isArray(client.redirect_uris)) {
      fail(`every client in ${path} needs client_id and redirect_uris`);
    }
    if (ttl !== undefined) {
      if (!Number.isInteger(ttl) || ttl <= 0) fail(`access_token_ttl of ${client.client_id} is not a positive integer`);
      accessTokenTtls.set(client.client_id, ttl);
    }
    const method = client.token_endpoint_auth_method ?? 'client_secret_basic';
    for (const scope of (client.scope ?? '').split(' ').filter(Boolean)) scopes.add(scope);
    return {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      ...(method === 'none' ? { application_type: 'native' } : {}),
      ...client,
      token_endpoint_auth_method: method,
    };
  });
  return { metadata, scopes: [...scopes], accessTokenTtls };
}

const options = parseArgs(process.argv.slice(2));
const { metadata, scopes, accessTokenTtls } = loadClients(options.clients);

const stats = { token_requests: {}, token_errors: {}, total: 0 };
const resetStats = () => {
  stats.token_requests = {};
  stats.token_errors = {};
  stats.total = 0;
};

const rotation = {
  default: undefined, // oidc-provider's own rule: public clients rotate, others near expiry
  always: () => true,
  never: () => false,
}[options.rotateRefreshToken];

const server = createServer();
server.listen(options.port, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: metadata,
    scopes,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      phone: ['phone_number'],
    },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    // Resource endpoints (userinfo) honour expiry to the second, so a test can see a short
    // access token die.
    clockTolerance: 0,
    ttl: {
      AccessToken: (_ctx, _token, client) => accessTokenTtls.get(client?.clientId) ?? options.accessTokenTtl,
      RefreshToken: options.refreshTokenTtl,
    },
    ...(rotation ? { rotateRefreshToken: rotation } : {}),
    features: {
      devInteractions: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: options.introspection },
      userinfo: { enabled: true },
    },
    async findAccount(_ctx, id) {
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: `${id}@example.test`, email_verified: true, name: id };
        },
      };
    },
  });

  provider.use(async (ctx, next) => {
    if (ctx.path === '/__granary/stats' && ctx.method === 'GET') {
      ctx.body = stats;
      return;
    }
    if (ctx.path === '/__granary/page') {
      ctx.type = 'html';
      ctx.body = '<!DOCTYPE html><html><head><title>Developer documentation</title></head>'
        + '<body><h1>Sign in to continue</h1><p>This is a web page, not an API endpoint.</p></body></html>';
      return;
    }
    if (ctx.path === '/__granary/revoke-access-token' && ctx.method === 'POST') {
      const form = new URLSearchParams(await new Promise((resolve, reject) => {
        let text = '';
        ctx.req.setEncoding('utf8');
        ctx.req.on('data', (chunk) => { text += chunk; });
        ctx.req.on('end', () => resolve(text));
        ctx.req.on('error', reject);
      }));
      const token = await provider.AccessToken.find(form.get('token') ?? '');
      if (token) await token.destroy();
      ctx.status = token ? 204 : 404;
      return;
    }
    if (ctx.path === '/__granary/stats/reset' && ctx.method === 'POST') {
      resetStats();
      ctx.status = 204;
      return;
    }
    await next();
    if (ctx.path === '/token' && ctx.method === 'POST') {
      const grant = ctx.oidc?.params?.grant_type ?? 'unknown';
      stats.total += 1;
      stats.token_requests[grant] = (stats.token_requests[grant] ?? 0) + 1;
      if (ctx.status >= 400) stats.token_errors[grant] = (stats.token_errors[grant] ?? 0) + 1;
    }
    if (options.verbose) process.stderr.write(`${ctx.method} ${ctx.path} -> ${ctx.status}\n`);
  });
  provider.on('server_error', (_ctx, error) => process.stderr.write(`server_error: ${error.stack}\n`));

  server.on('request', provider.callback());
  process.stdout.write(`${issuer}\n`);
});
server.on('error', (error) => fail(`cannot listen on 127.0.0.1:${options.port}: ${error.message}`));

// Stop when the parent goes away: its end of our stdin closes.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
