// A level-triggered wake-up for one waiting loop: notify() before wait() is not lost, and a loop always
// re-checks its conditions after waking (spurious wake-ups are harmless by construction).

export class Wakeup {
  private pending = false;
  private waiters: Array<() => void> = [];

  notify(): void {
    this.pending = true;
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  wait(): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.waiters.push(() => {
        this.pending = false;
        resolve();
      });
    });
  }
}
