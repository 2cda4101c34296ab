// What the addon exports: one initialiser per binding file, each adding its classes and functions to the
// exports object. addon.cpp calls them in the order listed there; lib/native.ts types the result.
#pragma once
#include <napi.h>

namespace ibqb {

void InitInfo(Napi::Env env, Napi::Object exports);              // info.cpp: info, setNumThreads
void InitTensor(Napi::Env env, Napi::Object exports);            // tensor.cpp: TensorHandle, tensorFromData, selectRows
void InitTensorIo(Napi::Env env, Napi::Object exports);          // tensor_io.cpp: checkpoint / safetensors / npy I/O
void InitIBQuantizer(Napi::Env env, Napi::Object exports);       // ibq_quantizer.cpp: IBQuantizerHandle
void InitVectorQuantizer(Napi::Env env, Napi::Object exports);   // vector_quantizer.cpp: VectorQuantizerHandle
void InitTokenizer(Napi::Env env, Napi::Object exports);         // tokenizer.cpp: TokenizerHandle
void InitTokenizerTrainer(Napi::Env env, Napi::Object exports);  // tokenizer_trainer.cpp: TokenizerTrainerHandle
void InitTransformer(Napi::Env env, Napi::Object exports);       // transformer.cpp: TransformerHandle, config fields
void InitGenerator(Napi::Env env, Napi::Object exports);         // generator.cpp: GeneratorHandle (continuous batching)
void InitProcessGroup(Napi::Env env, Napi::Object exports);      // process_group.cpp: ProcessGroupHandle
void InitLpips(Napi::Env env, Napi::Object exports);             // lpips.cpp: LpipsHandle
void InitFidInception(Napi::Env env, Napi::Object exports);      // fid_inception.cpp: FidInceptionHandle
void InitMetrics(Napi::Env env, Napi::Object exports);           // metrics.cpp: evaluation metrics
void InitConfigFields(Napi::Env env, Napi::Object exports);      // config_fields.cpp: configFields (declarations)
void InitImage(Napi::Env env, Napi::Object exports);            // image.cpp: resampleCrop (image pipeline)
void InitTestOps(Napi::Env env, Napi::Object exports);           // testops.cpp: operations for the tests

}  // namespace ibqb
