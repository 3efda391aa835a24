// Types for the WIT imports in ../wit/spin.wit, as componentize-js binds them.
declare module 'fermyon:spin/key-value@2.0.0' {
  export class Store {
    static open(label: string): Store;
    get(key: string): Uint8Array | undefined;
    set(key: string, value: Uint8Array): void;
    delete(key: string): void;
    exists(key: string): boolean;
    getKeys(): string[];
  }
}
declare module 'fermyon:spin/variables@2.0.0' {
  export function get(name: string): string;
}
