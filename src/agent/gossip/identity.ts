/**
 * The agent's gossip identity: an Ed25519 libp2p key made once and kept in
 * `<data-dir>/gossip/identity.key`, so that a restarted agent keeps its peer ID. Without a data dir
 * (`-dev`, everything in memory) each start gets a fresh key.
 *
 * The file is JSON, one object: `{ "version": 1, "type": "Ed25519", "peerId": "12D3…",
 * "privateKey": "<base64 libp2p protobuf>" }`. `peerId` is informational and checked on load.
 */

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { writeFileDurably } from '../durable-file.ts';

/** The file format this code writes and the newest it reads. */
export const IDENTITY_FORMAT_VERSION = 1;

/** An identity file that cannot be used; the message is one line naming the file. */
export class IdentityFileError extends Error {
  override readonly name = 'IdentityFileError';
}

export function identityPath(dataDir: string): string {
  return join(dataDir, 'gossip', 'identity.key');
}

interface IdentityFile {
  version: number;
  type: string;
  peerId: string;
  privateKey: string;
}

function parseIdentity(path: string, text: string): PrivateKey {
  const bad = (why: string) => new IdentityFileError(`gossip identity file ${path} is corrupt: ${why}`);
  let doc: Partial<IdentityFile>;
  try {
    doc = JSON.parse(text) as Partial<IdentityFile>;
  } catch {
    throw bad('not JSON');
  }
  if (typeof doc !== 'object' || doc === null) throw bad('not a JSON object');
  if (typeof doc.version !== 'number' || !Number.isInteger(doc.version) || doc.version < 1) {
    throw bad('no format version');
  }
  if (doc.version > IDENTITY_FORMAT_VERSION) {
    throw new IdentityFileError(
      `gossip identity file ${path} has format version ${doc.version}, newer than this meshd reads (${IDENTITY_FORMAT_VERSION})`,
    );
  }
  if (doc.type !== 'Ed25519') throw bad(`key type ${JSON.stringify(doc.type)} is not Ed25519`);
  if (typeof doc.privateKey !== 'string') throw bad('no private key');
  let key: PrivateKey;
  try {
    key = privateKeyFromProtobuf(Buffer.from(doc.privateKey, 'base64'));
  } catch {
    throw bad('the private key does not decode');
  }
  if (key.type !== 'Ed25519') throw bad(`key type ${key.type} is not Ed25519`);
  const peerId = peerIdFromPrivateKey(key).toString();
  if (doc.peerId !== undefined && doc.peerId !== peerId) throw bad('the peer ID does not match the key');
  return key;
}

/**
 * The gossip private key: read from `<dataDir>/gossip/identity.key`, or made and saved there (temp
 * file, fsync, rename, fsync of the directory; mode 0600) when the file does not exist yet.
 * @throws IdentityFileError when the file is corrupt or from a newer meshd.
 */
export async function loadOrCreateIdentity(dataDir: string | undefined): Promise<PrivateKey> {
  if (dataDir === undefined) return generateKeyPair('Ed25519');
  const path = identityPath(dataDir);
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new IdentityFileError(`cannot read gossip identity file ${path}: ${(err as Error).message}`);
    }
  }
  if (text !== undefined) return parseIdentity(path, text);
  const key = await generateKeyPair('Ed25519');
  const doc: IdentityFile = {
    version: IDENTITY_FORMAT_VERSION,
    type: 'Ed25519',
    peerId: peerIdFromPrivateKey(key).toString(),
    privateKey: Buffer.from(privateKeyToProtobuf(key)).toString('base64'),
  };
  await writeFileDurably(path, `${JSON.stringify(doc)}\n`);
  return key;
}
