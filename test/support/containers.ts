// Optional: real MySQL 8.x in a container, for machines with a Docker engine.
// testcontainers is an optional dependency and is only imported when asked for.

export async function startMysqlContainer(image: string): Promise<{ url: string; stop(): Promise<void> }> {
  let mod: typeof import('@testcontainers/mysql');
  try {
    mod = await import('@testcontainers/mysql');
  } catch (err) {
    throw new Error(`SHADOWSHIFT_TEST_MYSQL_IMAGE=${image} needs the optional dependency @testcontainers/mysql: ${(err as Error).message}`);
  }
  const container = await new mod.MySqlContainer(image)
    .withRootPassword('shadowshift')
    .withCommand([
      '--server-id=1',
      '--log-bin=mysql-bin',
      '--binlog-format=ROW',
      '--binlog-row-image=FULL',
      '--binlog-row-metadata=FULL',
      '--character-set-server=utf8mb4',
      '--default-time-zone=+05:30',
    ])
    .start();
  return {
    url: `mysql://root:shadowshift@${container.getHost()}:${container.getPort()}/shadowshift_test`,
    stop: async () => {
      await container.stop();
    },
  };
}
