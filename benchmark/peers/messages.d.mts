/** Types of messages.mjs, for the TypeScript peer. */
export declare const message: (i: number, size: number) => string
export declare const jsonMessage: (i: number, size: number) => string
