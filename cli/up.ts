export async function main(_argv: string[]): Promise<number> { process.stderr.write('skiff up: not yet\n'); return 1; }
