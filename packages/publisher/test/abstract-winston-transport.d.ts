declare module 'abstract-winston-transport' {
  /** winston's conformance suite for transports: registers describe/it blocks (mocha's globals). */
  export default function abstractWinstonTransport(options: {
    name: string;
    Transport: new (options: never) => unknown;
    construct?: object | (() => object);
    afterEach?: (options: unknown, done: () => void) => void;
  }): void;
}
