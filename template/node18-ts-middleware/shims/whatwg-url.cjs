// Stand-in for whatwg-url in the bundle: node-fetch prefers Node's own WHATWG URL anyway
// (`Url.URL || whatwgUrl.URL`), so the 280 KB package (with its Unicode tables) is never used at run time.
'use strict';
exports.URL = URL;
exports.URLSearchParams = URLSearchParams;
