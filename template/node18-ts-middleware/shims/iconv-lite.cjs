// Stand-in for iconv-lite in the bundle (it is half a megabyte of code pages, loaded by body-parser at startup).
// Decodes the charsets Node has built in (UTF-8, ASCII, Latin-1, UTF-16LE); for any other charset body-parser
// answers 415 "unsupported charset", as it does for charsets iconv-lite does not know.
'use strict';
const { StringDecoder } = require('node:string_decoder');

const NATIVE = { utf8: 'utf8', usascii: 'ascii', ascii: 'ascii', latin1: 'latin1', iso88591: 'latin1', binary: 'latin1', utf16le: 'utf16le', ucs2: 'utf16le' };
const canonical = (e) => String(e).toLowerCase().replace(/[^a-z0-9]/g, '');
function native(e) {
  const n = NATIVE[canonical(e)];
  if (!n) throw new Error(`Encoding not recognized: '${e}' (searched as: '${canonical(e)}')`);
  return n;
}
const stripBom = (s) => (s.charCodeAt(0) === 0xfeff ? s.slice(1) : s);

exports.encodingExists = (e) => NATIVE[canonical(e)] !== undefined;
exports.decode = (buf, e) => stripBom(Buffer.from(buf).toString(native(e)));
exports.encode = (s, e) => Buffer.from(String(s), native(e));
exports.getDecoder = (e) => {
  const d = new StringDecoder(native(e));
  let first = true;
  return {
    write: (b) => {
      const s = d.write(b);
      if (first && s !== '') {
        first = false;
        return stripBom(s);
      }
      return s;
    },
    end: () => d.end(),
  };
};
