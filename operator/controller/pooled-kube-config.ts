import { statSync } from "node:fs";
import type { AgentOptions, RequestOptions } from "node:https";
import { KubeConfig, type RequestContext } from "@kubernetes/client-node";
import { Agent } from "undici";

/**
 * A KubeConfig whose API requests share one keep-alive connection pool. client-node (2.0.1)
 * builds a new undici Agent while authenticating every request
 * (applySecurityAuthentication → createDispatcher), so every request opened a TLS connection of
 * its own: ~30 % of the operator's busy time under a bulk apply (CPU profile of
 * `npm run bench:operator`), a handshake on the API server's side each time, and TLS contexts
 * piling up until a GC. Credentials are still applied per request (a rotated ServiceAccount
 * token takes effect at once); the pool is replaced when the TLS material changes (server, CA,
 * client certificate or key, or the mtime of their files). Proxies, exec plugins and auth
 * providers keep client-node's own per-request dispatcher: their TLS material may change without
 * the kubeconfig saying so.
 */
export class PooledKubeConfig extends KubeConfig {
  #pool: { identity: string; agent: Agent } | undefined;

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const identity = this.#tlsIdentity();
    if (identity === undefined || context.getDispatcher() === undefined) return;
    if (this.#pool?.identity !== identity) {
      const options: RequestOptions = {};
      await this.applyToHTTPSOptions(options);
      const { ca, cert, key, pfx, passphrase, rejectUnauthorized, servername } = options;
      const tls: AgentOptions = { ca, cert, key, pfx, passphrase, servername };
      if (rejectUnauthorized !== undefined) tls.rejectUnauthorized = rejectUnauthorized;
      const dispatcher = this.createDispatcherOptions(this.getCurrentCluster(), tls);
      if (dispatcher.type !== "agent") return;
      // another request may have built it meanwhile (the await above)
      if (this.#pool?.identity !== identity) {
        const previous = this.#pool?.agent;
        this.#pool = { identity, agent: new Agent({ connect: dispatcher.connect }) };
        // requests already handed the old pool finish on it; it closes once they have
        if (previous) setTimeout(() => void previous.close(), 60_000).unref();
      }
    }
    context.setDispatcher(this.#pool.agent);
  }

  /** Closes the pool's connections (a stopped process). */
  async closePool(): Promise<void> {
    const pool = this.#pool;
    this.#pool = undefined;
    await pool?.agent.close();
  }

  #tlsIdentity(): string | undefined {
    const cluster = this.getCurrentCluster();
    const user = this.getCurrentUser();
    if (!cluster || cluster.proxyUrl || user?.exec || user?.authProvider) return undefined;
    return JSON.stringify([
      cluster.server,
      cluster.skipTLSVerify,
      cluster.tlsServerName,
      cluster.caData,
      fileVersion(cluster.caFile),
      user?.certData,
      fileVersion(user?.certFile),
      user?.keyData,
      fileVersion(user?.keyFile),
    ]);
  }
}

/** A file's path and modification time: a certificate rotated in place counts as new material. */
function fileVersion(path: string | undefined): string | undefined {
  if (!path) return undefined;
  try {
    return `${path}@${statSync(path).mtimeMs}`;
  } catch {
    return path; // client-node reports the missing file
  }
}
