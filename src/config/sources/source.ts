import type { ConfigError, ConfigObject } from '../object.ts';

/** Where a config source delivers what it reads. */
export interface ConfigSink {
  upsert(obj: ConfigObject): void;
  delete(kind: string, namespace: string, name: string): void;
  /** An object (or a whole file) was refused; the last good version, if any, keeps serving. */
  rejected(error: ConfigError): void;
  /** The source has delivered its initial state. */
  synced(): void;
}

export interface ConfigSource {
  start(sink: ConfigSink): Promise<void>;
  stop(): Promise<void>;
}
