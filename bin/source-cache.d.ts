// Types of source-cache.js (JavaScript: it runs before any TypeScript module may load).

export declare const SOURCE_CACHE_DIR: string;
export declare const SOURCE_CACHE_VERSION: number;

export interface SourceCacheManifest {
  version: number;
  /** Path relative to the project root ("src/cli/main.ts") → SHA-256 of the source stripped. */
  files: Record<string, string>;
}

export declare function cachedSource(root: string, manifest: SourceCacheManifest, url: string): string | undefined;

export declare function installSourceCache(root: string, env?: NodeJS.ProcessEnv): number;
