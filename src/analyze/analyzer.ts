/** An analyzer: a pure function from the analysis context to messages, with the message types it can emit. */
import type { AnalysisContext } from './context.ts';
import type { MessageType } from './message.ts';

export interface Analyzer {
  /** Istio's analyzer name where it is one of Istio's (`virtualservice.DestinationHostAnalyzer`), else `mizzen.*`. */
  name: string;
  description: string;
  types: readonly MessageType[];
  analyze(ctx: AnalysisContext): void;
}
