// Starts dynalite (a DynamoDB implementation on LevelDB) on 127.0.0.1 and prints
// "listening PORT" once it accepts connections.
//
// Usage: node serve.js [--port P] [--path DIR] [--max-seconds S]
//   --port 0 (the default) lets the kernel pick a free port, so two servers never race for one;
//   --path keeps the tables in DIR (default: in memory);
//   --max-seconds ends the server after S seconds (default 7200), so a forgotten one cannot run on.
// Tables are ACTIVE at once (no CREATING/DELETING delays): tests and benchmarks create many.
'use strict'

const dynalite = require('dynalite')

const args = process.argv.slice(2)
function option(name, fallback) {
  const i = args.indexOf(name)
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback
}

const port = Number(option('--port', '0'))
const maxSeconds = Number(option('--max-seconds', '7200'))
const path = option('--path', undefined)
if (!Number.isInteger(port) || port < 0 || !(maxSeconds > 0)) {
  console.error('usage: node serve.js [--port P] [--path DIR] [--max-seconds S]')
  process.exit(2)
}

const server = dynalite({ path, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 })
server.on('error', (e) => {
  console.error(`dynalite: ${e.message}`)
  process.exit(1)
})
server.listen(port, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`)
})
setTimeout(() => {
  console.error(`dynalite: --max-seconds ${maxSeconds} reached, stopping`)
  process.exit(0)
}, maxSeconds * 1000).unref()
