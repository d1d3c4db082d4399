declare module 'js-yaml' {
  /** Parses one YAML document (js-yaml 4). */
  export function load(text: string): unknown;
}
