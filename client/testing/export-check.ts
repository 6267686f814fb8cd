// Run by client/docs.test.ts from the repository root: the package's own `fulcrum/client` export resolves.
const { Client } = await import('fulcrum/client');
console.log(typeof Client);
