// Runs after the example's build (maven-invoker-plugin): the example printed its check line, a user of
// clip-model gets no CLI, chart or JCuda dependency (the log binding is its own choice), and every clipj
// jar names its module.
import java.util.jar.JarFile

def log = new File(basedir, 'build.log').text
assert log.contains('clip-example: OK') : 'EmbedExample did not print its OK line (see build.log)'
assert !log.contains('NoClassDefFoundError')

def deps = new File(basedir, 'dependencies.txt').text
assert deps.contains('org.clipj:clip-model:jar')
for (unwanted in ['info.picocli', 'org.jcuda', 'xchart']) {
    assert !deps.contains(unwanted) : "a clip-model user gets ${unwanted}:\n${deps}"
}
// the CLI's log binding and the JCuda binding are optional in the published POMs (the example picks its own binding)
def optional = ['clip-model': ['picocli', 'slf4j-simple'], 'clip-native': ['jcuda']]
optional.each { artifact, names ->
    def pom = new File(localRepositoryPath, "org/clipj/${artifact}/${clipjVersion}/${artifact}-${clipjVersion}.pom").text
    def blocks = pom.findAll(/(?s)<dependency>.*?<\/dependency>/)
    names.each { name ->
        def dep = blocks.find { it.contains("<artifactId>${name}</artifactId>") }
        assert dep != null && dep.contains('<optional>true</optional>') : "${artifact}'s ${name} is not optional"
    }
}

def names = ['clip-native': 'org.clipj.cuda', 'clip-kernels': 'org.clipj.kernels',
             'clip-runtime': 'org.clipj.runtime', 'clip-model': 'org.clipj.model']
names.each { artifact, module ->
    def dir = new File(localRepositoryPath, "org/clipj/${artifact}")
    def jars = []
    dir.eachFileRecurse { if (it.name.endsWith('.jar')) jars << it }
    assert !jars.isEmpty() : "no ${artifact} jar in ${dir}"
    jars.each { jar ->
        def name = new JarFile(jar).withCloseable { it.manifest.mainAttributes.getValue('Automatic-Module-Name') }
        assert name == module : "${jar.name}: Automatic-Module-Name ${name}, expected ${module}"
    }
}
return true
