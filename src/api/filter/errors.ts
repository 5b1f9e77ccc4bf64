/**
 * The one error `compileFilter` throws. `position` is the 0-based offset into the expression
 * (UTF-16 code units); the message names the 1-based column.
 */
export class FilterSyntaxError extends Error {
  override readonly name = 'FilterSyntaxError';
  readonly position: number;

  /** Message: `filter: <problem> at column <n>[; <hint>]`. */
  constructor(problem: string, position: number, hint?: string) {
    super(`filter: ${problem} at column ${position + 1}${hint ? `; ${hint}` : ''}`);
    this.position = position;
  }
}

/** Quote a piece of the source for an error message, cut short so messages stay one line. */
export function quote(text: string): string {
  const short = text.length > 32 ? `${text.slice(0, 29)}...` : text;
  return JSON.stringify(short);
}
