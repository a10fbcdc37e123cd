// Stand-in for LocalStack's ddb-local-loader agent jar.
//
// LocalStack starts DynamoDB Local with -javaagent:ddb-local-loader-0.1.jar.
// The real agent only lifts DynamoDB Local's 20-GSI limit, and LocalStack would
// download it from the internet, which this machine cannot reach. An agent that
// does nothing is enough for everything this project uses.
public final class DdbLocalLoader {
    private DdbLocalLoader() {}

    public static void premain(String args, java.lang.instrument.Instrumentation inst) {
        // Intentionally empty.
    }
}
