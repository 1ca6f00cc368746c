// A store that is "unreachable" while options.downFile exists (the factory fails as a database client does when
// the server refuses the connection), the built-in SQLite store otherwise. For the fleet's fault tests.
import fs from 'node:fs';

export default ({ options, sqlite }) => {
  if (fs.existsSync(options.downFile)) throw Object.assign(new Error('connect ECONNREFUSED 10.77.9.9:5432'), { code: 'ECONNREFUSED' });
  return sqlite();
};
