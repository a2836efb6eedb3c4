// A third-party OpenID Connect issuer (oauth2-mock-server) for the cross-provider test.
// Usage: node server.mjs PORT AUDIENCE
// Prints the issuer URL once it listens. Tokens from POST /token (client_credentials)
// carry sub "mock-user-1", the given audience and roles ["user"].
import { OAuth2Server } from 'oauth2-mock-server';

const [port, audience] = [Number(process.argv[2]), process.argv[3] ?? 'flash-sale'];
const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
server.service.on('beforeTokenSigning', (token) => {
  token.payload.sub = 'mock-user-1';
  token.payload.aud = audience;
  token.payload.email = 'mock-user-1@example.com';
  token.payload.roles = ['user'];
});
await server.start(port, '127.0.0.1');
console.log(server.issuer.url);
process.on('SIGTERM', async () => { await server.stop(); process.exit(0); });
