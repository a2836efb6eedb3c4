// Offline checks of npm lock files, the npm counterpart of cargo-deny's sources, licenses
// and bans checks (advisories need the registry's audit endpoint; see
// scripts/supply-chain.sh).
//
//   NPM_REGISTRY=$(npm config get registry) node supply-chain/npm-lock-check.mjs DIR...
//
// For every package locked in DIR/package-lock.json (lockfileVersion 2 or 3):
//   - source: the registry only (no git, tarball URL, file: or link dependencies): no
//     resolved URL (npm then takes the package from the configured registry) or one
//     under NPM_REGISTRY;
//   - integrity: a sha512 hash, so `npm ci` verifies what it downloads;
//   - license: an SPDX expression satisfied by ALLOWED_LICENSES;
//   - install scripts: only the packages in INSTALL_SCRIPTS, each with its reason.
// Prints one line per problem and exits 1 if there is any.
import { readFileSync } from "node:fs";
import { join } from "node:path";

const REGISTRY = process.env.NPM_REGISTRY?.replace(/\/?$/, "/");

// Every license found in the lock files today; a new one needs a look and a line here.
const ALLOWED_LICENSES = new Set(["MIT", "ISC", "BSD-2-Clause", "BSD-3-Clause", "Apache-2.0"]);

// Packages that declare an install script, by name, with why that is acceptable.
const INSTALL_SCRIPTS = new Map([
  [
    "esbuild",
    "its postinstall only checks that the platform binary (an optional dependency) is " +
      "there; scripts/web.sh installs with --ignore-scripts",
  ],
]);

// True when the SPDX expression is satisfied by the allowed licenses: an OR needs one
// side, an AND (or a WITH exception's base license) needs both.
function licenseAllowed(expr) {
  const tokens = expr.replace(/[()]/g, " $& ").split(/\s+/).filter(Boolean);
  let pos = 0;
  const primary = () => {
    const t = tokens[pos++];
    if (t === "(") {
      const v = orExpr();
      if (tokens[pos++] !== ")") throw new Error("unbalanced parentheses");
      return v;
    }
    if (t === undefined || ["AND", "OR", "WITH", ")"].includes(t)) {
      throw new Error(`unexpected ${t ?? "end"}`);
    }
    if (tokens[pos] === "WITH") pos += 2;
    return ALLOWED_LICENSES.has(t);
  };
  const andExpr = () => {
    let v = primary();
    while (tokens[pos] === "AND") {
      pos++;
      v = primary() && v;
    }
    return v;
  };
  const orExpr = () => {
    let v = andExpr();
    while (tokens[pos] === "OR") {
      pos++;
      v = andExpr() || v;
    }
    return v;
  };
  const v = orExpr();
  if (pos !== tokens.length) throw new Error(`unexpected ${tokens[pos]}`);
  return v;
}

function checkLock(dir) {
  const file = join(dir, "package-lock.json");
  const lock = JSON.parse(readFileSync(file, "utf8"));
  const problems = [];
  if (!lock.packages || lock.lockfileVersion < 2) {
    return { problems: [`${file}: lockfileVersion ${lock.lockfileVersion}, need 2 or 3`], count: 0 };
  }
  let count = 0;
  for (const [path, pkg] of Object.entries(lock.packages)) {
    if (path === "") continue; // the project itself
    count++;
    const name = pkg.name ?? path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length);
    const at = `${file}: ${name}@${pkg.version ?? "?"}`;
    if (pkg.link) {
      problems.push(`${at}: a link to ${pkg.resolved}, not a registry package`);
      continue;
    }
    if (pkg.resolved !== undefined && !(REGISTRY && pkg.resolved.startsWith(REGISTRY))) {
      problems.push(`${at}: resolved from ${pkg.resolved}, not from the registry`);
    }
    if (!/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/.test(pkg.version ?? "")) {
      problems.push(`${at}: version is not a registry version`);
    }
    if (!/^sha512-/.test(pkg.integrity ?? "")) {
      problems.push(`${at}: no sha512 integrity hash`);
    }
    const license = typeof pkg.license === "string" ? pkg.license : undefined;
    if (license === undefined) {
      problems.push(`${at}: no license in the lock file`);
    } else {
      try {
        if (!licenseAllowed(license)) problems.push(`${at}: license ${license} is not allowed`);
      } catch (err) {
        problems.push(`${at}: license "${license}" does not parse (${err.message})`);
      }
    }
    if (pkg.hasInstallScript && !INSTALL_SCRIPTS.has(name)) {
      problems.push(`${at}: has an install script`);
    }
  }
  return { problems, count };
}

let failed = false;
for (const dir of process.argv.slice(2)) {
  const { problems, count } = checkLock(dir);
  for (const p of problems) console.log(`error: ${p}`);
  console.log(`${dir}/package-lock.json: ${count} packages, ${problems.length} problems`);
  failed ||= problems.length > 0;
}
process.exit(failed ? 1 : 0);
