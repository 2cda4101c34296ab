#!/usr/bin/env bash
# CI step: the package as a user gets it. Packs this checkout (which must be built: dist/ ships in the
# tarball), installs the tarball into a fresh project outside the checkout (the install script builds the
# addon with cmake-js; ccache serves the objects the checkout's build compiled), then from that project:
# imports the package and encodes/decodes one image, checks require() gets the ESM-only error, and follows
# the advice of the "not built" error (npm install-scripts approve + npm rebuild) to a working addon again.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d "${TMPDIR:-/tmp}/ibq-pack-XXXXXX")
trap 'rm -rf "$work"' EXIT
tgz="$work/$(npm pack --silent --pack-destination "$work" | tail -n 1)"
app="$work/app"
mkdir "$app"
cd "$app"
npm init -y >/dev/null
t0=$(date +%s)
# npm 11 runs a dependency's install script only when the project allows it (package.json allowScripts; older
# npm ignores the field); --foreground-scripts shows the build's progress
npm pkg set allowScripts.ibq-native=true --json
npm install --no-audit --no-fund --prefer-offline --foreground-scripts "$tgz"
echo "ci-pack-test: npm install (with the addon build) took $(( $(date +%s) - t0 )) s"

check_encode() {
  node --input-type=module -e "
    import { Tokenizer, tensor, info } from 'ibq-native';
    const tok = Tokenizer.create({
      ddconfig: { double_z: false, z_channels: 32, resolution: 16, in_channels: 3, out_ch: 3, ch: 32, ch_mult: [1, 2],
        num_res_blocks: 1, attn_resolutions: [], dropout: 0.0 },
      n_embed: 16, embed_dim: 8 }, { seed: 1 }).eval();
    const idx = tensor(Array.from({ length: 64 }, (_, i) => i % 16), [1, 8, 8], { dtype: 'int64' });
    const [png] = await tok.decodeImages(idx);
    const { indices } = await tok.encodeImages([png], { imageSize: 16 });
    if (indices.shape.join('x') !== '1x8x8') throw new Error('unexpected indices shape ' + indices.shape);
    console.log('ci-pack-test: encoded one image to indices ' + indices.shape.join('x') + ' with libtorch ' + info().libtorch);
  "
}
check_encode
msg=$(node -e "require('ibq-native')" 2>&1 || true)
grep -q ERR_IBQ_ESM_ONLY <<<"$msg" || { echo "ci-pack-test: require() did not give ERR_IBQ_ESM_ONLY: $msg" >&2; exit 1; }

# the "not built" error of an installed package names commands that work there
rm -rf node_modules/ibq-native/build
msg=$(node --input-type=module -e "import 'ibq-native'" 2>&1 || true)
grep -q "npm rebuild ibq-native" <<<"$msg" || { echo "ci-pack-test: unexpected error: $msg" >&2; exit 1; }
grep -q "npm install-scripts approve ibq-native" <<<"$msg" || { echo "ci-pack-test: unexpected error: $msg" >&2; exit 1; }
npm install-scripts approve ibq-native >/dev/null 2>&1 || true  # npm < 11 has no such command (and no need)
npm rebuild ibq-native --foreground-scripts
check_encode
echo "ci-pack-test: ok"
