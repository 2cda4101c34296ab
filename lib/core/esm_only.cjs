// require('ibq-native') lands here (package.json "exports" > "require"): the package is an ES module only.
'use strict';
const err = new Error(
  "ibq-native is an ES module and cannot be loaded with require(). Use `import { Tokenizer } from 'ibq-native'` " +
    "in an ES module (.mjs, or \"type\": \"module\" in package.json), or `const ibq = await import('ibq-native')` " +
    'from CommonJS.',
);
err.code = 'ERR_IBQ_ESM_ONLY';
throw err;
