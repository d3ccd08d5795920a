// Opening a KV bucket or an object store creates its stream when it is
// missing. Roles that start together on a fresh JetStream (the controller
// and the health manager under `skiff up`, two controllers side by side)
// race for that, and the loser is refused ("subjects overlap with an
// existing stream", "stream name already in use") for a stream that exists
// by then: opening it again binds to it.

const CREATE_RACE = /subjects overlap|already in use/i;

export async function openBucket<T>(open: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await open();
    } catch (error) {
      if (attempt >= attempts || !CREATE_RACE.test(String((error as Error)?.message ?? error))) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
    }
  }
}
