// The console's own script, served from /admin/static/ (the Content-Security-Policy allows
// scripts from the relay itself and nothing inline). Pages add theirs beside it.
"use strict";
