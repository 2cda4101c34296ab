/**
 * A tensor of a dtype outside the dtype table of docs/architecture.md (int16, complex, quantized) found outside the
 * state_dict of a checkpoint: it loads as this placeholder, and using it throws an Error naming the key
 * and the dtype.
 */
export class UnsupportedTensor {
  constructor(
    /** Where it sits in the checkpoint, e.g. "meta.optimizer_states[0]". */
    readonly key: string,
    /** The torch storage class, e.g. 'ShortStorage'. */
    readonly storageType: string,
    readonly shape: number[],
  ) {}
  get dtype(): never {
    return this.fail();
  }
  data(): Promise<never> {
    return Promise.reject(this.error());
  }
  dataSync(): never {
    return this.fail();
  }
  to(): never {
    return this.fail();
  }
  dispose(): void {}
  private error(): Error {
    return new Error(`${this.key}: tensor dtype ${this.storageType} is not supported (supported: float32, float64, float16, bfloat16, int64, int32, int8, uint8, bool)`);
  }
  private fail(): never {
    throw this.error();
  }
  toString(): string {
    return `UnsupportedTensor(${this.storageType}, [${this.shape.join(', ')}])`;
  }
}
