import { execFile } from "node:child_process";
import { generateKeyPair, randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

// Test PKI: keys come from node:crypto. Node has no API to *issue* X.509 certificates, so the
// certificates are signed by the `openssl` CLI (Debian package `openssl`) rather than adding an
// npm dependency or hand-writing DER. Each call gets its own minimal config, so the system
// openssl.cnf does not matter.

export async function ecKey(): Promise<string> {
  const { privateKey } = await promisify(generateKeyPair)("ec", {
    namedCurve: "prime256v1",
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  return privateKey;
}

const VALIDITY_DAYS = "30";

export async function selfSignedCa(dir: string, name: string, commonName: string): Promise<void> {
  const config = join(dir, `${name}.cnf`);
  await writeFile(
    config,
    [
      "[req]",
      "distinguished_name = dn",
      "[dn]",
      "[ext]",
      "basicConstraints = critical, CA:TRUE",
      "keyUsage = critical, keyCertSign, cRLSign, digitalSignature",
      "subjectKeyIdentifier = hash",
      "",
    ].join("\n"),
  );
  await openssl(dir, [
    ["req", "-x509", "-new", "-config", config, "-extensions", "ext", "-key", `${name}.key`],
    ["-subj", `/CN=${commonName}`, "-days", VALIDITY_DAYS, "-out", `${name}.crt`],
  ]);
}

export async function signLeaf(
  dir: string,
  name: string,
  ca: string,
  subject: string,
  extensions: readonly string[],
): Promise<void> {
  const config = join(dir, `${name}.cnf`);
  await writeFile(
    config,
    [
      "[req]",
      "distinguished_name = dn",
      "[dn]",
      "[ext]",
      "basicConstraints = critical, CA:FALSE",
      "keyUsage = critical, digitalSignature, keyEncipherment",
      "authorityKeyIdentifier = keyid",
      ...extensions,
      "",
    ].join("\n"),
  );
  await openssl(dir, [
    ["req", "-new", "-config", config, "-key", `${name}.key`, "-subj", subject, "-out", `${name}.csr`],
  ]);
  await openssl(dir, [
    ["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.crt`, "-CAkey", `${ca}.key`],
    ["-set_serial", `0x${randomBytes(16).toString("hex")}`, "-days", VALIDITY_DAYS],
    ["-extfile", config, "-extensions", "ext", "-out", `${name}.crt`],
  ]);
}

export async function openssl(cwd: string, args: readonly (readonly string[])[]): Promise<void> {
  try {
    await promisify(execFile)("openssl", args.flat(), { cwd });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? "";
    throw new Error(`openssl ${args.flat().join(" ")} failed (is Debian's openssl installed?): ${stderr}`, {
      cause: error,
    });
  }
}

/** A CA and a serving certificate for 127.0.0.1/localhost signed by it, as files in `dir`. */
export async function loopbackServerPki(
  dir: string,
  name: string,
): Promise<{ caFile: string; certFile: string; keyFile: string }> {
  const [caKey, serverKey] = await Promise.all([ecKey(), ecKey()]);
  await writeFile(join(dir, `${name}-ca.key`), caKey, { mode: 0o600 });
  await writeFile(join(dir, `${name}.key`), serverKey, { mode: 0o600 });
  await selfSignedCa(dir, `${name}-ca`, `dataforce-test-${name}-ca`);
  await signLeaf(dir, name, `${name}-ca`, `/CN=${name}`, [
    "extendedKeyUsage = serverAuth",
    "subjectAltName = IP:127.0.0.1, DNS:localhost",
  ]);
  return {
    caFile: join(dir, `${name}-ca.crt`),
    certFile: join(dir, `${name}.crt`),
    keyFile: join(dir, `${name}.key`),
  };
}
