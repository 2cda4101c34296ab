{
  "targets": [
    {
      "target_name": "ibq_native",
      "sources": [
        "<!@(node -e \"const fs=require('fs');for(const d of ['native/ibq','native/bindings'])for(const f of fs.readdirSync(d,{recursive:true}).sort())if(f.endsWith('.cpp'))console.log(d+'/'+f)\")"
      ],
      "include_dirs": [
        "native",
        "<!@(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node scripts/torch-flags.cjs include)",
        "<!@(node scripts/jpeg-lib.cjs include)",
        "native/shim"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS",
        "NODE_ADDON_API_CPP_EXCEPTIONS_ALL",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "IBQ_TORCH_LIBDIR=\"<!(node scripts/torch-flags.cjs libdir)\""
      ],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++1y", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-Wno-unused-parameter", "-O2"],
      "libraries": ["<!@(node scripts/torch-flags.cjs libs)", "<!@(node scripts/jpeg-lib.cjs libs)"]
    }
  ]
}
