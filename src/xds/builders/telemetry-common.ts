/** Shared by the Telemetry builders. */
import { ensureType } from '../../proto/root.ts';
import type { Json } from './common.ts';

export type Note = (message: string) => void;
export const typed = (name: string, body: Json): Json => ({ '@type': `type.googleapis.com/${name}`, ...body });

/** Whether a typed_config of this message type can be encoded (its proto loads from the pinned tree). */
export const messageAvailable = (name: string): boolean => ensureType(name);
