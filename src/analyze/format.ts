/** istioctl analyze's output formats (istioctl/pkg/util/formatting): `log` lines, or a JSON / YAML list of records. */
import { stringify } from 'yaml';
import type { Analyzer } from './analyzer.ts';
import { renderLog, unstructured, type Message } from './message.ts';

export type OutputFormat = 'log' | 'json' | 'yaml';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['log', 'json', 'yaml'];

export function formatMessages(messages: readonly Message[], format: OutputFormat): string {
  switch (format) {
    case 'log':
      return messages.map(renderLog).join('\n');
    case 'json':
      // Go's json.MarshalIndent(msgs, "", "\t"): a nil list is `null`, an empty one `[]`.
      return JSON.stringify(messages.map(unstructured), null, '\t');
    case 'yaml':
      return messages.length === 0 ? '[]\n' : stringify(messages.map(unstructured), { lineWidth: 0 });
  }
}

/** `-L`: every analyzer with what it checks and the codes it can report. */
export function formatAnalyzerList(analyzers: readonly Analyzer[]): string {
  const lines = ['Available analyzers:'];
  for (const a of analyzers) {
    lines.push(`* ${a.name}:`, `    ${a.description}`, `    codes: ${a.types.map((t) => `${t.code} (${t.level})`).join(', ')}`);
  }
  return `${lines.join('\n')}\n`;
}
