/* version.h: moat's release version (Semantic Versioning 2.0.0,
 * https://semver.org): what `moat --version`, `moat-controller --version` and
 * `moat-worker --version` print, what the daemons log when they start, what
 * PING answers and what a worker gives in REGISTER. The wire protocol has its
 * own number (proto.h, PROTO_VERSION). */
#ifndef MOAT_VERSION_H
#define MOAT_VERSION_H

#define MOAT_VERSION "0.1.0"

#endif
